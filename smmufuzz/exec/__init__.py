"""Running a program: the runner, the op models, the scheduler, schedule search, observers, verdicts."""
