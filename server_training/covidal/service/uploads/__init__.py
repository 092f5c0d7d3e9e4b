"""What happens to an uploaded volume or label between its last byte and its record.

1. :mod:`.headers` reads the header in Python (NRRD: :mod:`.nrrd`, NIfTI: :mod:`.nifti`, a DICOM zip: its
   member list) and refuses what no reader should see: detached data, ASCII voxels, overlong lines, unknown
   encodings and types, more voxels than :class:`.limits.DecodeLimits` allows (413, before decompressing).
2. :mod:`.sandbox` decodes it (:mod:`.decode`) in a child process forked from a small fork server
   (:mod:`.forkserver`), with memory, CPU-time, file-size and wall-clock limits: a reader that crashes,
   balloons or hangs costs that upload a 422, never the service.

The routes (:mod:`covidal.service.routes.volumes`, :mod:`covidal.service.routes.labels`) only translate HTTP.
"""
