WITH toTimeZone(eventTime, {timeZone:String}) AS localTime
SELECT
    *,
    toString(localTime) AS localEventTime
FROM kandji_logs
WHERE receivedAt >= {from:DateTime}
  AND receivedAt < {to:DateTime}
  AND readOnly
  AND multiSearchAnyCaseInsensitive(
      concat(targetType, ' ', targetComponent, ' ', action),
      ['filevault', 'recovery', 'unlock_pin', 'unlockpin', 'unlock pin', 'bypass', 'secret']
  )
  AND NOT (
      has({businessDays:Array(UInt8)}, toDayOfWeek(localTime))
      AND toHour(localTime) >= {businessHoursStart:UInt8}
      AND toHour(localTime) < {businessHoursEnd:UInt8}
  )
ORDER BY eventTime
