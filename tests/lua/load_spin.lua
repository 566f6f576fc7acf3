-- Hostile: an infinite loop in the main chunk, stopped by the load budget.
while true do end
