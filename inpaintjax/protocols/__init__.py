"""The field's evaluation protocols (LaMa, CoModGAN, MAT, PConv, EdgeConnect, mmagic) as data, and
the evaluator that scores any method's output folders with them (docs/protocols.md)."""

from inpaintjax.protocols.definitions import (PROTOCOLS, Binning, Metric, Preparation, Protocol, PublishedRow,
                                              get_protocol, load_protocol_file, register, touches_border)
from inpaintjax.protocols.evaluate import RunningMoments, evaluate_protocol, prepare_image, write_inputs
from inpaintjax.protocols.tables import format_text, lama_tsv, to_csv, to_markdown, write_tables

__all__ = ["PROTOCOLS", "Binning", "Metric", "Preparation", "Protocol", "PublishedRow", "RunningMoments",
           "evaluate_protocol", "format_text", "get_protocol", "lama_tsv", "load_protocol_file", "prepare_image",
           "register", "to_csv", "to_markdown", "touches_border", "write_inputs", "write_tables"]
