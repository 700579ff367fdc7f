WITH
    -- Secret views in the window, by an identified actor.
    window_views AS
    (
        SELECT *
        FROM kandji_logs
        WHERE receivedAt >= {from:DateTime}
          AND receivedAt < {to:DateTime}
          AND readOnly
          AND actorId != ''
          AND multiSearchAnyCaseInsensitive(
              concat(targetType, ' ', targetComponent, ' ', action),
              ['filevault', 'recovery', 'unlock_pin', 'unlockpin', 'unlock pin', 'bypass', 'secret']
          )
    ),
    -- Secret views received before the window, within the lookback.
    earlier_views AS
    (
        SELECT actorId
        FROM kandji_logs
        WHERE receivedAt < {from:DateTime}
          AND eventTime >= {from:DateTime} - toIntervalDay({lookbackDays:UInt32})
          AND readOnly
          AND multiSearchAnyCaseInsensitive(
              concat(targetType, ' ', targetComponent, ' ', action),
              ['filevault', 'recovery', 'unlock_pin', 'unlockpin', 'unlock pin', 'bypass', 'secret']
          )
    )
SELECT
    sourceID,
    actorId,
    actorType,
    any(actor) AS actorDetails,
    count() AS views,
    groupUniqArray(targetId) AS devices,
    groupUniqArray(targetComponent) AS secrets,
    groupUniqArray(srcIP) AS sourceIPs,
    min(eventTime) AS firstView,
    max(eventTime) AS lastView,
    groupArray(eventID) AS eventIDs
FROM window_views
WHERE actorId NOT IN
    (
        SELECT actorId
        FROM earlier_views
        WHERE actorId IN (SELECT actorId FROM window_views)
    )
  AND (SELECT count() FROM (SELECT 1 FROM earlier_views LIMIT 1)) > 0
GROUP BY sourceID, actorId, actorType
ORDER BY firstView
