"""Training of the models the toy world ships: the tiny priors (SD 2.x and SDXL-refiner format) and
the tiny open_clip model the toy suite is scored with."""
