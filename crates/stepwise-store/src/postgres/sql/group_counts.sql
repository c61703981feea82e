SELECT status, count(*) AS n FROM run WHERE group_name = $1 GROUP BY status ORDER BY status
