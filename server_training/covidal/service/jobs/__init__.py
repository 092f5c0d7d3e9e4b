"""Training jobs of ``covidal serve``: the runner thread, the child worker process, and their shared parts.

* :mod:`.config`: a job's options (:class:`TrainJobConfig`) and where its files live (:class:`JobPaths`);
* :mod:`.annotations`: a project's volumes and answers as slices and label maps (no torch);
* :mod:`.runner`: :class:`JobRunner`, the service thread that runs queued jobs one at a time per device;
* :mod:`.worker`: ``python -m covidal.service.jobs.worker``, the child process that trains.
"""
