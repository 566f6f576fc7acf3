-- Raises while loading (line 2).
error("cannot start without configuration")
