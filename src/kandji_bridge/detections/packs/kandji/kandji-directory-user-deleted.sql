SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND (targetType ILIKE '%directory%' OR lower(targetType) IN ('user', 'users', 'directory_user'))
  AND lower(action) IN ('delete', 'deleted', 'remove', 'removed', 'destroy', 'destroyed')
ORDER BY eventTime
