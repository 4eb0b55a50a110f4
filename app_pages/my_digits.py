"""My digits: your own handwriting as a test set, and teaching the network your digits."""

import streamlit as st

from ui import my_digits

st.header("My digits")
st.caption(
    "Networks trained on MNIST often misread a person's own digits. Draw yours here (the "
    "page asks for each digit in turn), see how well a network reads them, and fine-tune it "
    "on them, with MNIST digits replayed so that it does not forget the rest."
)
my_digits.init()
my_digits.show_flash()
my_digits.collect_section()
my_digits.set_section()
st.divider()
candidate = my_digits.choose_model()
my_digits.measure_section(candidate)
st.divider()
my_digits.teach_section(candidate)
