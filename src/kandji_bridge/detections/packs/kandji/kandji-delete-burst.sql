SELECT
    sourceID,
    actorId,
    actorType,
    actorDetails,
    length(times) AS deletes,
    toDateTime(times[1], 'UTC') AS firstDelete,
    toDateTime(times[-1], 'UTC') AS lastDelete,
    deleted,
    eventIDs
FROM
(
    SELECT
        sourceID,
        actorId,
        actorType,
        any(actor) AS actorDetails,
        arraySort(groupArray(toUnixTimestamp(eventTime))) AS times,
        groupArray(1000)(concat(eventName, ' ', targetId)) AS deleted,
        groupArray(1000)(eventID) AS eventIDs,
        max(receivedAt) AS lastReceived
    FROM kandji_logs
    WHERE receivedAt >= {from:DateTime} - toIntervalMinute({burstMinutes:UInt32})
      AND receivedAt < {to:DateTime}
      AND lower(action) IN ('delete', 'deleted', 'remove', 'removed', 'destroy', 'destroyed', 'revoke', 'revoked')
    GROUP BY sourceID, actorId, actorType
    HAVING lastReceived >= {from:DateTime} AND count() >= {threshold:UInt32}
)
WHERE arrayExists(
    (t, i) -> i + {threshold:UInt32} - 1 <= length(times)
        AND times[i + {threshold:UInt32} - 1] - t < {burstMinutes:UInt32} * 60,
    times,
    arrayEnumerate(times)
)
ORDER BY deletes DESC
