"""Training jobs of ``covidal serve``: the runner thread, the child worker process, and their shared parts.

* :mod:`.job_config`: the job kinds (:class:`JobKind`) and a ``train`` job's options (:class:`TrainJobConfig`)
  (no torch; where a job's files live: :mod:`covidal.service.project.layout`);
* :mod:`.noisy_teacher_config`: a ``noisy-teacher`` job's options (:class:`NoisyTeacherJobConfig`);
* :mod:`.training_data`: a project's volumes and answers as slices and label maps (no torch);
* :mod:`.runner`: :class:`JobRunner`, the service thread that runs queued jobs one at a time per device;
* :mod:`.worker`: ``python -m covidal.service.jobs.worker``, the child process that trains a job;
* :mod:`.noisy_teacher_job`: the stages of a ``noisy-teacher`` job (teacher, pseudo-labels, student);
* :mod:`.progress`: what the worker tells the store while it runs, and at the end.
"""
