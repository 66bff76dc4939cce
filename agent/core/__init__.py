"""Layer 1, the base every other layer stands on: the Evidence type, errors, paths, the
question's-own-words rules, spans and option letters. Imports nothing else of vidagent.
"""
