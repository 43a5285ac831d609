"""Teaching content for the four notebooks, with its logic: each lesson shows the thing, explains it, and checks.

Modules (one concern each, each with tests in ``tests/unit/test_lessons_*.py``):

- :mod:`~workshop_lib.lessons.dgd`: the rendered DynamoGraphDeployment, annotated part by part, what became of it,
  and the ``kubectl``/``helm`` command behind every library call that touches a cluster.
- :mod:`~workshop_lib.lessons.efa_reference`: what a healthy P5 log says (public lines with their source) and why
  each threshold the kit checks is what it is.
- :mod:`~workshop_lib.lessons.memory`: the worker memory budget, measured where the lab can and labelled where not.
- :mod:`~workshop_lib.lessons.predict`: "predict, then run": grade a learner's prediction against a measured value.
- :mod:`~workshop_lib.lessons.drills`: break it on purpose, then check the learner saw the right symptom.
- :mod:`~workshop_lib.lessons.timing`: how long each notebook takes on each target, and on what basis.
- :mod:`~workshop_lib.lessons.oddities`: explanations for what looks odd on the local lab.
"""
