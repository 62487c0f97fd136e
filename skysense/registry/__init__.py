"""skysense.registry"""
