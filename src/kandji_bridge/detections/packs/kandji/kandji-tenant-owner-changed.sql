SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND NOT readOnly
  AND (
      (targetType ILIKE '%tenant%' AND (targetComponent ILIKE '%owner%' OR JSONHas(newState, 'owner_email')))
      OR (targetType ILIKE '%owner%')
      OR (action ILIKE '%owner%')
  )
ORDER BY eventTime
