"""Training: courses, lessons, quizzes, schedules and progress for dealers.

Not built yet: the running spine and the retailer assistant come first (see README).
"""
