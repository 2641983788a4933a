import os
import sys

# Tests import the module under src/ without installing the project.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))
