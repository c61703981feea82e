UPDATE clock_offset SET offset_ms = offset_ms + ?1
