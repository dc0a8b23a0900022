package main

func rowsLab(e *env, rows map[string]bool) ([]Row, error) { return nil, nil }
