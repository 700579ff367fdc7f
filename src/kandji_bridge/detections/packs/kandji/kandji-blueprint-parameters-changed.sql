SELECT
    *,
    arrayMap(p -> JSONExtractString(p, 'name'), JSONExtractArrayRaw(newState, 'parameters')) AS parameterNames
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND targetType ILIKE '%blueprint%'
  AND targetComponent ILIKE '%parameter%'
  AND NOT readOnly
ORDER BY eventTime
