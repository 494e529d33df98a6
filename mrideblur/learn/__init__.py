"""Learned components and how they are trained: one training loop (:mod:`.loop`) shared by the
diffusion prior (:mod:`mrideblur.prior.train`) and the learned deblurring networks."""
