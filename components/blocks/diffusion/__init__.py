"""Diffusion building blocks: the DDPM schedule, the epsilon-prediction loss, samplers.

diffusers provides the eps-network (``UNet2DModel``) and the schedule (``DDPMScheduler``); the
samplers here write their loops out in full and take a data-consistency map as an argument, so
model, sampler and forward operator stay separate (used by CCDF, DiffuseMorph, DiffusionCLIP).
"""
