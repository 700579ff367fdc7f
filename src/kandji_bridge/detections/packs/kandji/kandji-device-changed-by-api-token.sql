SELECT *
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND targetType ILIKE '%device%'
  AND (actorType ILIKE '%token%' OR actorType ILIKE 'api%')
  AND NOT readOnly
  AND NOT has({ignoreActorIds:Array(String)}, actorId)
ORDER BY eventTime
