"""The modules, losses and samplers of the image-representation baselines of Appendix A (their
fitting: ``training/baselines/imagessl``)."""
