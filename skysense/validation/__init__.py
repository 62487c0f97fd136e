"""skysense.validation"""
