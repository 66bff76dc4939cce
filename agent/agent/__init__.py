"""Layer 6 (above vidagent.tools): the LangGraph agent (recall, plan, act, reflect, answer),
the tool registry the planner decodes against, exemplars, text answers and the VideoAgent API.
"""
