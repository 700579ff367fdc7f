SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND targetType ILIKE '%blueprint%'
  AND lower(action) IN ('delete', 'deleted', 'remove', 'removed', 'destroy', 'destroyed')
  AND NOT (targetComponent ILIKE '%library%' OR targetComponent ILIKE '%parameter%')
ORDER BY eventTime
