WITH
    lower(e.action) AS verb,
    JSONExtractString(e.newState, 'role') AS role
SELECT
    e.*,
    role AS newRole,
    known.role AS previousRole
FROM kandji_logs AS e
LEFT JOIN
(
    SELECT
        targetId,
        argMax(JSONExtractString(newState, 'role'), eventTime) AS role
    FROM kandji_logs
    WHERE receivedAt < {from:DateTime}
      AND eventTime >= {from:DateTime} - toIntervalDay({lookbackDays:UInt32})
      AND targetId IN
      (
          SELECT targetId
          FROM kandji_logs
          WHERE receivedAt >= {from:DateTime}
            AND receivedAt < {to:DateTime}
            AND (targetType ILIKE '%admin%' OR lower(targetType) IN ('tenant_user', 'team_member', 'access_user'))
      )
      AND JSONExtractString(newState, 'role') != ''
    GROUP BY targetId
) AS known ON known.targetId = e.targetId
WHERE e.receivedAt >= {from:DateTime}
  AND e.receivedAt < {to:DateTime}
  AND (e.targetType ILIKE '%admin%' OR lower(e.targetType) IN ('tenant_user', 'team_member', 'access_user'))
  AND (
      verb IN ('create', 'created', 'add', 'added', 'invite', 'invited')
      OR (
          verb IN ('update', 'updated', 'change', 'changed', 'edit', 'edited')
          AND role != ''
          AND if(known.role != '', known.role != role, has({privilegedRoles:Array(String)}, lower(role)))
      )
  )
ORDER BY e.eventTime
