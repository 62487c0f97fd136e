"""skysense.evaluation"""
