-- $1 kinds, $2 run ids, $3 groups, $4 data: the events of runs whose open steps just
-- reached zero, in the order given.
INSERT INTO event (kind, run_id, group_name, data, at)
SELECT e.kind, e.run_id, e.group_name, e.data, (SELECT stepwise_now())
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[])
     WITH ORDINALITY AS e(kind, run_id, group_name, data, ord)
ORDER BY e.ord
