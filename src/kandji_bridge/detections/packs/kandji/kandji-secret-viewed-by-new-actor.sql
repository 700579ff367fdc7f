WITH known AS
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
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND readOnly
  AND actorId != ''
  AND multiSearchAnyCaseInsensitive(
      concat(targetType, ' ', targetComponent, ' ', action),
      ['filevault', 'recovery', 'unlock_pin', 'unlockpin', 'unlock pin', 'bypass', 'secret']
  )
  AND actorId NOT IN (SELECT actorId FROM known)
  AND (SELECT count() FROM known) > 0
GROUP BY sourceID, actorId, actorType
ORDER BY firstView
