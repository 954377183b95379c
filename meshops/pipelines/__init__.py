"""Low-code pipeline files: YAML or JSON describing one pipeline, checked before it is sent.

A file names the capture type and its settings, the plugin instances and their configs,
optionally the target node(s), and may use ``${VAR}`` / ``${VAR:-default}`` parameters::

    name: traffic
    node: edge-1
    type: VideoFile
    capture: {url: "${VIDEO}", cap_resolution: 5}
    plugins:
      - signature: ECHO_01
        instances:
          - instance_id: e1
            prefix: "${PREFIX:-cars}"

- :func:`load_pipeline` reads a file into a :class:`PipelineFile` (the wire ``config`` with
  UPPER_CASE keys, the target ``nodes``, the ``source``), or raises
  :class:`PipelineFileError` naming the file, line and path of every problem.
- :func:`validate_pipeline` checks a wire config against the installed capture types and
  plugins and returns every :class:`PipelineIssue` (``PLUGINS[0].INSTANCES[1].THRESHOLD:
  ...``); :func:`load_valid_pipeline` does both and raises, for whatever sends pipelines.
- :func:`installed_schemas` and :func:`schema_for`: JSON Schema of plugin and capture
  settings, for editors and ``meshops schema``.

See docs/concepts.md for the file format in full.
"""

from meshops.pipelines._files import PipelineFile, load_pipeline, load_valid_pipeline
from meshops.pipelines._issues import PipelineFileError, PipelineIssue
from meshops.pipelines._schema import installed_schemas, schema_for
from meshops.pipelines._validate import count_instances, validate_pipeline
from meshops.pipelines._variables import parse_assignments

__all__ = [
    "PipelineFile",
    "PipelineFileError",
    "PipelineIssue",
    "count_instances",
    "installed_schemas",
    "load_pipeline",
    "load_valid_pipeline",
    "parse_assignments",
    "schema_for",
    "validate_pipeline",
]
