SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND targetType ILIKE '%token%'
  AND lower(action) IN ('create', 'created', 'add', 'added', 'generate', 'generated')
ORDER BY eventTime
