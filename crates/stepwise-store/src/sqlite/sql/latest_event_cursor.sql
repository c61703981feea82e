SELECT max(seq) FROM event
