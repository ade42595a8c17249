"""Inference beyond ABC: neural posterior estimation on a reference table of simulations."""
