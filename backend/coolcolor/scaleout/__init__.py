"""Scale-out: one job's windows run beyond this process — on a Ray cluster (``ray_cluster``'s
``RaySegmentRunner``: ``coolcolor colorize --ray``, ``coolcolor serve --ray``) or as tasks of a render farm
(``farm``: ``coolcolor farm export-openjd``). Both run the engine's own segment code on the plan the video
engine's driver (``coolcolor.video.run``) made; see docs/scale-out.md.
"""
