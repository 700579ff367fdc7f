WITH
    arrayFilter(
        item -> arrayExists(pattern -> JSONExtractString(item, 'name') ILIKE pattern, {securityItems:Array(String)}),
        JSONExtractArrayRaw(newState, 'library_items_removed')
    ) AS removedSecurityItems,
    arrayExists(
        pattern -> JSONExtractString(newState, 'name') ILIKE pattern OR JSONExtractString(newState, 'type') ILIKE pattern,
        {securityItems:Array(String)}
    ) AS isSecurityItem
SELECT
    *,
    arrayMap(item -> JSONExtractString(item, 'name'), removedSecurityItems) AS removedItems
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND NOT readOnly
  AND (
      (targetType ILIKE '%blueprint%' AND notEmpty(removedSecurityItems))
      OR (
          targetType ILIKE '%library%item%'
          -- the action and the flag first: the patterns parse newState
          AND (
              lower(action) IN ('delete', 'deleted', 'remove', 'removed', 'deactivate', 'deactivated', 'disable', 'disabled')
              OR (JSONHas(newState, 'active') AND NOT JSONExtractBool(newState, 'active'))
          )
          AND isSecurityItem
      )
  )
ORDER BY eventTime
