WITH
    arrayMap(
        p -> concat(upper(JSONExtractString(p, 'http_method')), ' ', JSONExtractString(p, 'path')),
        JSONExtractArrayRaw(e.newState, 'permissions')
    ) AS granted,
    arrayFilter(
        p -> startsWith(p, 'DELETE ')
            OR arrayExists(pattern -> p ILIKE concat('% ', pattern), {sensitivePaths:Array(String)}),
        granted
    ) AS sensitive,
    arrayFilter(p -> NOT has(known.permissions, p), sensitive) AS newSensitive
SELECT
    e.*,
    newSensitive AS newSensitivePermissions,
    known.permissions AS knownPermissions
FROM kandji_logs AS e
LEFT JOIN
(
    SELECT
        targetId,
        groupUniqArrayArray(arrayMap(
            p -> concat(upper(JSONExtractString(p, 'http_method')), ' ', JSONExtractString(p, 'path')),
            JSONExtractArrayRaw(newState, 'permissions')
        )) AS permissions
    FROM kandji_logs
    WHERE receivedAt < {from:DateTime}
      AND eventTime >= {from:DateTime} - toIntervalDay({lookbackDays:UInt32})
      AND targetId IN
      (
          SELECT targetId
          FROM kandji_logs
          WHERE receivedAt >= {from:DateTime}
            AND receivedAt < {to:DateTime}
            AND targetType ILIKE '%token%'
      )
    GROUP BY targetId
) AS known ON known.targetId = e.targetId
WHERE e.receivedAt >= {from:DateTime}
  AND e.receivedAt < {to:DateTime}
  AND e.targetType ILIKE '%token%'
  AND lower(e.action) NOT IN ('delete', 'deleted', 'remove', 'removed', 'revoke', 'revoked')
  AND notEmpty(newSensitive)
ORDER BY e.eventTime
