"""The NLP layer: what every BERT-family task shares, between ``core/`` and ``tasks/``.

- ``encoder.py``   the pretrained encoder and its tokenizer (load, save, lm_checkpoint)
- ``model.py``     ``EncoderNet`` (an encoder with heads, which describes its own ONNX export),
                   the model archive payload, loading a model from an archive
- ``tokens.py``    words to sub-token windows with first-sub-token labels (token tasks)
- ``bert.py``      BERT's forward and tokenizer for evaluate and infer without transformers (seconds
                   faster to start; the same outputs), falling back to transformers for other encoders
- ``inference.py`` batched inference over the runners of core/inference.py
- ``subtasks.py``  the fit-and-save, export and input plumbing that every NLP task's subtasks call
                   (it imports nothing heavy at the top: dataset_convert runs without torch)
- ``hf_export.py``  export_format=HF: a Hugging Face folder, stock classes where they fit
- ``hf_modeling.py`` the custom classes that folder carries as ``modeling_tao.py`` (torch and transformers only)
"""
