"""Data for demos and experiments that needs no private data: a real chest CT (fetched through pip) with
SYNTHETIC lesions, as one demo case (:mod:`.demo`) or a set of 3D cases (:mod:`.synthetic_cases`). The
product (training, the service) never imports this package."""
