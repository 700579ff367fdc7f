SELECT
    sourceID,
    any(workspaceID) AS workspaceID,
    max(receivedAt) AS lastReceived,
    max(eventTime) AS lastEventTime,
    {silenceMinutes:UInt32} AS silenceMinutes
FROM kandji_logs
WHERE receivedAt >= {from:DateTime} - toIntervalMinute({silenceMinutes:UInt32})
  AND receivedAt < {to:DateTime}
GROUP BY sourceID
HAVING lastReceived + toIntervalMinute({silenceMinutes:UInt32}) >= {from:DateTime}
   AND lastReceived + toIntervalMinute({silenceMinutes:UInt32}) < {to:DateTime}
ORDER BY sourceID
