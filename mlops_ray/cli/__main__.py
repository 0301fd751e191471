import sys

from mlops_ray.cli import main

sys.exit(main())
