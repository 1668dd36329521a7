"""Shared by the tests of the machinery (grids, curricula, resume, reports), whose outcome does not
depend on which student learns: they run the small student, two to three times as fast as the
default one. The default student has its own tests (test_student, test_loop)."""

SMALL_STUDENT = {"student": "mlp", "student_memory": 0}
