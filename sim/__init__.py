"""MuJoCo twins, tasks, scripted experts and protocol twins (see the twins issue)."""
