SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND targetType ILIKE '%device%'
  AND NOT readOnly
  AND (
      lower(action) IN ('delete', 'deleted', 'remove', 'removed', 'unenroll', 'unenrolled', 'unmanage', 'unmanaged')
      OR (
          targetComponent ILIKE '%mdm%'
          AND lower(action) NOT IN ('create', 'created', 'add', 'added', 'enroll', 'enrolled')
      )
  )
ORDER BY eventTime
