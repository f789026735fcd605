"""The app's longer texts: what it is, where its data came from, and how to get a dataset."""

from ser.train import Augmentation, Validation

ABOUT = """
The app guesses the emotion in a short clip of speech: it computes features of the sound
(a log-mel spectrogram with, for the default model, how pitch, loudness and timbre move; or
MFCCs) and passes them to a neural network trained on actors speaking with a given emotion.
Each figure names the protocol that produced it. The shipped models' are measured by
k-fold by speaker, on **speakers they never heard** during training, which is what you can
expect on a new voice, at best (a random split's figure is not: its test speakers were heard). Real,
spontaneous speech is subtler than acted speech, and background noise, other languages and
very short clips all make it worse. Recordings unlike the training corpora cost most: trained
on one of the two corpora below and tested on the other (7 emotions), the default model's
recipe scored 54% and 26%. Treat a result as a hint, not a verdict, and never use it to make
decisions about people.
"""

CREDITS = """
### Data and licences

The models are trained on acted emotional speech:

- **RAVDESS**: Livingstone, S. R., & Russo, F. A. (2018). *The Ryerson Audio-Visual Database
  of Emotional Speech and Song (RAVDESS)*. PLoS ONE 13(5): e0196391.
  [doi:10.1371/journal.pone.0196391](https://doi.org/10.1371/journal.pone.0196391).
  Licence: [CC BY-NC-SA 4.0](https://creativecommons.org/licenses/by-nc-sa/4.0/).
- **TESS**: Dupuis, K., & Pichora-Fuller, M. K. (2010). *Toronto Emotional Speech Set
  (TESS)*. University of Toronto. [doi:10.5683/SP2/E8H2MF](https://doi.org/10.5683/SP2/E8H2MF).
  Licence: [CC BY-NC-ND 4.0](https://creativecommons.org/licenses/by-nc-nd/4.0/).

**Non-commercial use only.** Both licences forbid commercial use, and models trained on
these recordings inherit that restriction: use the app and its models for research,
teaching and personal experiments, not in a product or service you sell. A model trained
on other recordings (the Train page reads SAVEE, CREMA-D, EmoDB and your own folders too)
carries the licence terms of those recordings.
"""

EXAMPLE_NOTE = (
    "A 2.6 s synthetic voice saying *“Kids are talking by the door”*, one of the "
    "sentences the models learnt from. It was not spoken with any emotion, so no answer is the "
    "right one: it shows what the page does, not how accurate the model is. It was recorded at "
    "16 kHz, which a model that hears 0-8 kHz (the default does) takes in whole; a model that "
    "listens higher answers with a caveat, or hands it to a 16 kHz model, and the page says so."
)

DATASET_SOURCES = """\
No dataset at hand? These public corpora of acted emotional speech work as they are
downloaded (unzip, then type the folder above):

- **RAVDESS** (24 actors, 1,440 speech clips, 8 emotions): *Audio_Speech_Actors_01-24.zip*
  from Zenodo, <https://zenodo.org/records/1188976>. Licence CC BY-NC-SA 4.0.
- **TESS** (2 speakers, 2,800 clips, 7 emotions): the University of Toronto's dataverse,
  <https://doi.org/10.5683/SP2/E8H2MF>.
- **CREMA-D** (91 actors, 7,442 clips, 6 emotions): the *AudioWAV* folder of
  <https://github.com/CheyneyComputerScience/CREMA-D> (stored with Git LFS).
- **SAVEE** (4 speakers, 480 clips, 7 emotions): <http://kahlan.eps.surrey.ac.uk/savee/>
  (free registration).
- **EmoDB** (10 speakers, German, 535 clips): <http://emodb.bilderbar.info/>.

A speaker-independent hold-out needs RAVDESS among the data, or at least 5 speakers.
"""

RANDOM_SPLIT_WARNING = (
    "A random split puts clips of the same speakers in training and test, so the model is "
    "partly tested on voices it has already heard: it **overstates accuracy**, typically by "
    "10-25 points. Use it only to compare with papers that report it."
)

OFF = "Training is turned off on this deployment."
OFF_HOW = (
    "To train a model, run the app on your own machine with `SER_ENABLE_TRAINING=1` (or "
    "`SER_DATA_DIR` set to the folder that holds your datasets), or use `python -m ser train`."
)

AUGMENT_LABELS = {  # the augmentations the Train page offers, as it names them
    Augmentation.NOISE: "Add background noise",
    Augmentation.PITCH: "Shift pitch",
    Augmentation.STRETCH: "Stretch time",
}
VALIDATION_LABELS = {
    Validation.SPEAKER: "Speaker-independent hold-out (recommended)",
    Validation.SPEAKER_FOLDS: "k-fold by speaker (for few speakers)",
    Validation.RANDOM: "Random 20% split",
}
