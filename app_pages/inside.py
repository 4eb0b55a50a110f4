"""Inside: one image through the network, layer by layer, and what would change its mind."""

from ui.inside import render_page

render_page()
