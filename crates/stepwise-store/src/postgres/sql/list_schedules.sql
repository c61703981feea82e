SELECT name, workflow, spec, paused, next_fire_at, last_fire_at FROM schedule ORDER BY name
