"""skysense.inference"""
