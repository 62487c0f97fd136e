"""skysense.data"""
