SELECT
    e.sourceID AS sourceID,
    e.actorId AS actorId,
    e.actorType AS actorType,
    any(e.actor) AS actorDetails,
    e.srcASCountryCode AS country,
    any(known.countries) AS knownCountries,
    groupUniqArray(e.srcIP) AS sourceIPs,
    groupUniqArray(e.srcASOrganization) AS networks,
    count() AS events,
    min(e.eventTime) AS firstSeen,
    groupArray(e.eventID) AS eventIDs
FROM kandji_logs AS e
INNER JOIN
(
    SELECT
        actorId,
        groupUniqArray(srcASCountryCode) AS countries
    FROM kandji_logs
    WHERE receivedAt < {from:DateTime}
      AND eventTime >= {from:DateTime} - toIntervalDay({lookbackDays:UInt32})
      AND srcASCountryCode != ''
      AND actorId IN
      (
          SELECT actorId
          FROM kandji_logs
          WHERE receivedAt >= {from:DateTime}
            AND receivedAt < {to:DateTime}
            AND srcASCountryCode != ''
            AND actorId != ''
      )
    GROUP BY actorId
) AS known ON known.actorId = e.actorId
WHERE e.receivedAt >= {from:DateTime}
  AND e.receivedAt < {to:DateTime}
  AND e.srcASCountryCode != ''
  AND e.actorId != ''
  AND NOT has(known.countries, e.srcASCountryCode)
GROUP BY e.sourceID, e.actorId, e.actorType, e.srcASCountryCode
ORDER BY firstSeen
