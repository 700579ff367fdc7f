SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND targetType ILIKE '%token%'
  AND lower(action) IN ('delete', 'deleted', 'remove', 'removed', 'revoke', 'revoked', 'destroy', 'destroyed')
ORDER BY eventTime
