INSERT INTO queue (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING
