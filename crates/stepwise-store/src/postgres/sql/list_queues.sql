SELECT name, paused FROM queue ORDER BY name
