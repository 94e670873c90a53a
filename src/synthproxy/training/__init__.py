"""The one training loop (:func:`~synthproxy.training.loop.fit`) and what it needs: learning-rate schedules,
checkpoint files, seeded and deterministic runtime. Preset encoders (:mod:`synthproxy.proxy`) and
sound-matching estimators (:mod:`synthproxy.matching`) both train through it."""
