"""skysense.training"""
